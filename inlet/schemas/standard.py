"""The standard XDM classes and field groups inlet ships, written compactly from the XDM
specification (field names and types as XDM defines them, only the fields inlet's senders use
and their close neighbours), and the default tenant schemas composed from them.

Each document is in the Schema Registry's unresolved form: `$id`, `meta:altId`, `title`,
`type`, `properties` (fields), `meta:resourceType`, and for field groups
`meta:intendedToExtend`. Objects declare `additionalProperties`: XDM objects are closed
(`false`); maps (`identityMap`, consent `idSpecific`) give the schema of their values.
"""

from __future__ import annotations

from typing import Any

Doc = dict[str, Any]

XDM = "https://ns.adobe.com/xdm"
PROFILE = f"{XDM}/context/profile"
EXPERIENCE_EVENT = f"{XDM}/context/experienceevent"
ACCOUNT = f"{XDM}/context/account"
ACCOUNT_PERSON = f"{XDM}/context/account-person"
RECORD = f"{XDM}/data/record"
TIME_SERIES = f"{XDM}/data/time-series"

# Field types ---------------------------------------------------------------------------------


def string(fmt: str | None = None, max_length: int | None = None, enum: list[str] | None = None,
           pattern: str | None = None, min_length: int | None = None) -> Doc:
    out: Doc = {"type": "string"}
    if fmt:
        out["format"] = fmt
    if max_length is not None:
        out["maxLength"] = max_length
    if min_length is not None:
        out["minLength"] = min_length
    if enum:
        out["enum"] = enum
    if pattern:
        out["pattern"] = pattern
    return out


def number(minimum: float | None = None, maximum: float | None = None) -> Doc:
    out: Doc = {"type": "number"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def integer(minimum: int | None = None, maximum: int | None = None) -> Doc:
    out: Doc = {"type": "integer"}
    if minimum is not None:
        out["minimum"] = minimum
    if maximum is not None:
        out["maximum"] = maximum
    return out


def boolean() -> Doc:
    return {"type": "boolean"}


def obj(required: list[str] | None = None, **fields: Doc) -> Doc:
    out: Doc = {"type": "object", "properties": fields, "additionalProperties": False}
    if required:
        out["required"] = required
    return out


def array(items: Doc, max_items: int | None = None) -> Doc:
    out: Doc = {"type": "array", "items": items}
    if max_items is not None:
        out["maxItems"] = max_items
    return out


def mapping(values: Doc) -> Doc:
    return {"type": "object", "meta:xdmType": "map", "additionalProperties": values}


def measure() -> Doc:
    """XDM Measure: `{"value": n}`, how an event counts (page views, purchases)."""
    return obj(id=string(), value=number())


CURRENCY = string(pattern="^[A-Z]{3}$")
DATE_TIME = string("date-time")

B2B_SOURCE = obj(sourceType=string(), sourceInstanceID=string(), sourceID=string(), sourceKey=string())
ADDRESS = obj(street1=string(), street2=string(), city=string(), postalCode=string(), stateProvince=string(),
              country=string(), countryCode=string(pattern="^[A-Za-z]{2}$"), region=string(),
              primary=boolean(), status=string())
EMAIL = obj(address=string("email"), primary=boolean(), type=string(), label=string(),
            status=string(enum=["active", "incomplete", "blacklisted", "blocked"]), statusReason=string())
PHONE = obj(number=string(max_length=64), primary=boolean(), status=string(), validity=string(), label=string())
REPO = obj(createDate=DATE_TIME, modifyDate=DATE_TIME)
CONSENT_VALUE = obj(val=string(enum=["y", "n", "p", "u", "dy", "dn", "LI", "CT", "CP", "VI", "PN"]),
                    time=DATE_TIME, reason=string())
IDENTITY_ITEM = obj(required=["id"], id=string(min_length=1, max_length=1024),
                    authenticatedState=string(enum=["ambiguous", "authenticated", "loggedOut"]),
                    primary=boolean())


def _class(class_id: str, title: str, behaviour: str, fields: Doc, required: list[str] | None = None) -> Doc:
    doc: Doc = {
        "$id": class_id, "meta:altId": _alt_id(class_id), "title": title, "type": "object",
        "meta:resourceType": "classes", "meta:containerId": "global", "meta:extends": [behaviour],
        "version": "1.0", "properties": fields, "additionalProperties": False,
    }
    if required:
        doc["required"] = required
    return doc


def _field_group(group_id: str, title: str, extends: list[str], fields: Doc) -> Doc:
    return {
        "$id": group_id, "meta:altId": _alt_id(group_id), "title": title, "type": "object",
        "meta:resourceType": "mixins", "meta:containerId": "global", "meta:intendedToExtend": extends,
        "version": "1.0", "properties": fields,
    }


def _alt_id(doc_id: str) -> str:
    """`https://ns.adobe.com/xdm/context/profile` → `_xdm.context.profile`, as the Registry does."""
    return "_" + doc_id.removeprefix("https://ns.adobe.com/").replace("/", ".")


# Classes -------------------------------------------------------------------------------------

CLASSES: list[Doc] = [
    _class(PROFILE, "XDM Individual Profile", RECORD, {
        "_id": string(), "_repo": REPO, "personID": string(), "createdByBatchID": string("uri"),
        "modifiedByBatchID": string("uri"), "repositoryCreatedBy": string(), "repositoryLastModifiedBy": string(),
    }),
    _class(EXPERIENCE_EVENT, "XDM ExperienceEvent", TIME_SERIES, {
        "_id": string(min_length=1), "timestamp": DATE_TIME, "eventType": string(), "eventMergeId": string(),
        "producedBy": string(), "receivedTimestamp": DATE_TIME,
        "channel": obj(_id=string(), _type=string("uri"), mediaType=string(), mediaAction=string(),
                       typeAtSource=string()),
    }, required=["_id", "timestamp"]),
    _class(ACCOUNT, "XDM Business Account", RECORD, {
        "_id": string(), "_repo": REPO, "accountKey": B2B_SOURCE, "accountID": string(), "accountName": string(),
        "accountType": string(), "accountStatus": string(), "accountSourceType": string(),
        "accountParentKey": B2B_SOURCE, "accountPhone": PHONE, "accountBillingAddress": ADDRESS,
        "accountShippingAddress": ADDRESS, "isDeleted": boolean(),
        "accountOrganization": obj(industry=string(), numberOfEmployees=integer(minimum=0),
                                   annualRevenue=obj(amount=number(), currencyCode=CURRENCY),
                                   website=string("uri"), SICCode=string(), legalName=string()),
    }, required=["accountKey"]),
    _class(ACCOUNT_PERSON, "XDM Business Account Person Relation", RECORD, {
        "_id": string(), "_repo": REPO, "accountKey": B2B_SOURCE, "personKey": B2B_SOURCE,
        "accountPersonKey": B2B_SOURCE, "personRole": string(), "isPrimary": boolean(), "isActive": boolean(),
        "isDirect": boolean(), "isDeleted": boolean(), "startDate": DATE_TIME, "endDate": DATE_TIME,
    }, required=["accountKey"]),
]

# Field groups --------------------------------------------------------------------------------

EVENT = [EXPERIENCE_EVENT]
PERSON = [PROFILE]
FG = f"{XDM}/context"

FIELD_GROUPS: list[Doc] = [
    _field_group(f"{FG}/identitymap", "IdentityMap", [PROFILE, EXPERIENCE_EVENT, ACCOUNT_PERSON], {
        "identityMap": mapping(array(IDENTITY_ITEM)),
    }),
    _field_group(f"{FG}/experienceevent-web", "Web Details", EVENT, {
        "web": obj(
            webPageDetails=obj(URL=string("uri-reference"), name=string(), siteSection=string(), server=string(),
                               isHomePage=boolean(), isErrorPage=boolean(), pageViews=measure(),
                               viewName=string()),
            webReferrer=obj(URL=string("uri-reference"), type=string()),
            webInteraction=obj(URL=string("uri-reference"), name=string(), region=string(),
                               type=string(enum=["download", "exit", "other"]), linkClicks=measure()),
        ),
    }),
    _field_group(f"{FG}/experienceevent-commerce", "Commerce Details", EVENT, {
        "commerce": obj(
            order=obj(purchaseID=string(), purchaseOrderNumber=string(), priceTotal=number(minimum=0),
                      currencyCode=CURRENCY, orderType=string(),
                      payments=array(obj(transactionID=string(), paymentType=string(), paymentAmount=number(),
                                         currencyCode=CURRENCY))),
            purchases=measure(), productViews=measure(), productListViews=measure(), productListAdds=measure(),
            productListRemovals=measure(), productListOpens=measure(), checkouts=measure(),
            saveForLaters=measure(), cartAbandons=measure(),
        ),
        "productListItems": array(obj(_id=string(), SKU=string(), name=string(), quantity=integer(minimum=0),
                                      priceTotal=number(minimum=0), currencyCode=CURRENCY,
                                      productAddMethod=string(), product=string("uri"))),
    }),
    _field_group(f"{FG}/experienceevent-environment-details", "Environment Details", EVENT, {
        "environment": obj(
            type=string(enum=["browser", "application", "iot", "external", "widget"]),
            browserDetails=obj(userAgent=string(), name=string(), version=string(), vendor=string(),
                               viewportWidth=integer(minimum=0), viewportHeight=integer(minimum=0),
                               javaScriptEnabled=boolean(), javaScriptVersion=string(), cookiesEnabled=boolean(),
                               javaEnabled=boolean(),
                               acceptLanguage=string(), thirdPartyCookiesEnabled=boolean()),
            operatingSystem=string(), operatingSystemVersion=string(), operatingSystemVendor=string(),
            ipV4=string(), ipV6=string(), connectionType=string(), carrier=string(), language=string(),
            domain=string(), ISP=string(),
        ),
        "placeContext": obj(localTime=DATE_TIME, localTimezoneOffset=integer(minimum=-720, maximum=840),
                            ianaTimezone=string(),
                            geo=obj(countryCode=string(), stateProvince=string(), city=string(), postalCode=string(),
                                    _schema=obj(latitude=number(-90, 90), longitude=number(-180, 180)))),
    }),
    _field_group(f"{FG}/experienceevent-device", "Device", EVENT, {
        "device": obj(type=string(), typeID=string(), typeIDService=string("uri"), manufacturer=string(),
                      model=string(), modelNumber=string(), screenHeight=integer(minimum=0),
                      screenWidth=integer(minimum=0), screenOrientation=string(enum=["portrait", "landscape"]),
                      colorDepth=integer(minimum=0)),
    }),
    _field_group(f"{FG}/experienceevent-implementationdetails", "Implementation Details", EVENT, {
        "implementationDetails": obj(name=string("uri"), version=string(), environment=string(
            enum=["browser", "app", "server", "iot"])),
    }),
    _field_group(f"{FG}/profile-person-details", "Demographic Details", PERSON, {
        "person": obj(name=obj(firstName=string(), middleName=string(), lastName=string(), fullName=string(),
                               courtesyTitle=string(), suffix=string()),
                      birthDate=string("date"), birthYear=integer(minimum=1, maximum=32767),
                      birthDayAndMonth=string(pattern="^[0-9]{2}-[0-9]{2}$"),
                      gender=string(enum=["male", "female", "not_specified", "non_specific"])),
    }),
    _field_group(f"{FG}/profile-personal-details", "Personal Contact Details", PERSON, {
        "personalEmail": EMAIL, "homeAddress": ADDRESS, "mobilePhone": PHONE, "homePhone": PHONE,
    }),
    _field_group(f"{FG}/profile-work-details", "Work Contact Details", PERSON, {
        "workEmail": EMAIL, "workAddress": ADDRESS, "workPhone": PHONE,
    }),
    # Campaign's field group that puts a person's work contact details on events: the one
    # Adobe's time-series streaming tutorial composes its schema with (workEmail identity).
    _field_group("https://ns.adobe.com/experience/campaign/experienceevent-profile-work-details",
                 "Profile Work Details (events)", EVENT, {"workEmail": EMAIL, "workAddress": ADDRESS, "workPhone": PHONE}),
    _field_group(f"{XDM}/mixins/profile-consents", "Consents and Preferences", PERSON, {
        "consents": obj(collect=CONSENT_VALUE, adID=CONSENT_VALUE, share=CONSENT_VALUE,
                        personalize=obj(content=CONSENT_VALUE),
                        marketing=obj(preferred=string(), any=CONSENT_VALUE, email=CONSENT_VALUE,
                                      push=CONSENT_VALUE, sms=CONSENT_VALUE, call=CONSENT_VALUE),
                        idSpecific=mapping(mapping(mapping(obj(consents=mapping(CONSENT_VALUE))))),
                        metadata=obj(time=DATE_TIME)),
    }),
    _field_group(f"{FG}/profile-loyalty-details", "Loyalty Details", PERSON, {
        "loyalty": obj(loyaltyID=array(string()), program=string(), tier=string(), status=string(),
                       points=number(), pointsRedeemed=number(), joinDate=DATE_TIME, expiryDate=DATE_TIME),
    }),
    _field_group(f"{FG}/profile-b2b-person-details", "Business Person Details", PERSON, {
        "b2b": obj(accountKey=B2B_SOURCE, personKey=B2B_SOURCE, personStatus=string(), isDeleted=boolean()),
    }),
]

GLOBAL: dict[str, Doc] = {d["$id"]: d for d in (*CLASSES, *FIELD_GROUPS)}
CLASS_OF_DATASET = {"profile": PROFILE, "experienceevent": EXPERIENCE_EVENT, "account": ACCOUNT,
                    "account-person": ACCOUNT_PERSON}

# Default tenant schemas: what the default datasets (and a dataset naming no schema) use -------

_EVENT_GROUPS = ["identitymap", "experienceevent-web", "experienceevent-commerce",
                 "experienceevent-environment-details", "experienceevent-device",
                 "experienceevent-implementationdetails"]
_PROFILE_GROUPS = ["identitymap", "profile-person-details", "profile-personal-details", "profile-work-details",
                   "profile-loyalty-details", "profile-b2b-person-details"]


def _group_id(name: str) -> str:
    return f"{XDM}/mixins/{name}" if name == "profile-consents" else f"{FG}/{name}"


DEFAULT_SCHEMA_PARTS: dict[str, tuple[str, str, list[str]]] = {
    # dataset class: (schema name, class, field groups)
    "experienceevent": ("event", EXPERIENCE_EVENT, _EVENT_GROUPS),
    "profile": ("profile", PROFILE, [*_PROFILE_GROUPS, "profile-consents"]),
    "account": ("account", ACCOUNT, []),
    "account-person": ("account-person", ACCOUNT_PERSON, ["identitymap"]),
}


def default_schema_id(tenant: str, dataset_class: str) -> str:
    return f"https://ns.adobe.com/{tenant}/schemas/{DEFAULT_SCHEMA_PARTS[dataset_class][0]}"


def default_schemas(tenant: str) -> list[Doc]:
    """The tenant schemas seeded into every sandbox: one per dataset class, Profile-enabled
    (`meta:immutableTags: ["union"]`) so the union view is built from them."""
    out = []
    for dataset_class, (name, class_id, groups) in DEFAULT_SCHEMA_PARTS.items():
        schema_id = default_schema_id(tenant, dataset_class)
        out.append({
            "$id": schema_id, "meta:altId": f"_{tenant}.schemas.{name}",
            "title": f"{GLOBAL[class_id]['title']} ({name})", "type": "object",
            "meta:resourceType": "schemas", "meta:containerId": "tenant", "meta:class": class_id,
            "meta:immutableTags": ["union"], "version": "1.0",
            "allOf": [{"$ref": class_id}, *({"$ref": _group_id(g)} for g in groups)],
        })
    return out
